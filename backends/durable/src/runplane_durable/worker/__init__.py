"""The worker layer: what `runplane worker` processes run (a program's agents for runs no caller
waits for, and remote tool tasks)."""
