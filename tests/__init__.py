"""Tests for Memory Advisor."""
