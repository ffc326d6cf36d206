"""Tests of ``fastnn.playground``: the server's API and guard, sessions, data, model and exports."""
