"""salas.adapter"""
