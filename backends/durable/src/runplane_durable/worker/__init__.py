"""Workers: processes that run a program's agents for runs no caller waits for."""
