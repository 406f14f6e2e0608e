"""salas.protocol"""
