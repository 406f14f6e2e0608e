"""salas.server"""
