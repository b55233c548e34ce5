"""Runners execute one task attempt: HTTP, shell, containers (ECS, EKS, local)."""
