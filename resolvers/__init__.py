"""Strawberry types and resolvers: the gateway's one GraphQL schema."""
