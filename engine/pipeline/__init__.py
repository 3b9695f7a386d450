"""Orchestration: one run start to finish, output sheets, Rule Check and Run Log, scenarios, file
commands.
"""
