"""Notifications: tells citizens and agencies, in their language, at each step of an application."""
