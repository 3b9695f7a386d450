"""The rules language: grammar, parser, AST, static checks and messages (SPEC §3)."""
