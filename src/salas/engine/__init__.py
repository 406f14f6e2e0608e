"""salas.engine"""
