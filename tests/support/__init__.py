"""Test helpers shared by the project's tests."""
