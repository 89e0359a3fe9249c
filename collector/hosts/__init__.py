"""Customers and hosts: enrolment, host tokens, the host views."""
