"""Outbound HTTP to people and their tools: webhook gates and notification targets."""
