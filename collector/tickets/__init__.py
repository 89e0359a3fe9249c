"""Tickets: priorities, the priority policy, escalations and the agent version window."""
