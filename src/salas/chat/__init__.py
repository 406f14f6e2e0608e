"""salas.chat"""
