CREATE TABLE runplane_approvals (
	run_id VARCHAR(200) NOT NULL, 
	call_id VARCHAR(300) NOT NULL, 
	position INTEGER NOT NULL, 
	tool_name VARCHAR(500) NOT NULL, 
	arguments TEXT NOT NULL, 
	agent_name VARCHAR(500) NOT NULL, 
	key VARCHAR(300) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	always BOOLEAN NOT NULL, 
	message TEXT, 
	requested_at FLOAT NOT NULL, 
	decided_at FLOAT, 
	decided_by VARCHAR(300), 
	policy VARCHAR(300), 
	seal VARCHAR(64), 
	PRIMARY KEY (run_id, call_id)
);

CREATE TABLE runplane_events (
	run_id VARCHAR(200) NOT NULL, 
	seq INTEGER NOT NULL, 
	type VARCHAR(64) NOT NULL, 
	payload TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE runplane_journal (
	run_id VARCHAR(200) NOT NULL, 
	seq INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	key VARCHAR(300) NOT NULL, 
	fingerprint VARCHAR(64), 
	payload TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (run_id, seq), 
	UNIQUE (run_id, kind, key)
);

CREATE TABLE runplane_keys (
	name VARCHAR(64) NOT NULL, 
	secret VARCHAR(128) NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE runplane_run_states (
	run_id VARCHAR(200) NOT NULL, 
	state TEXT NOT NULL, 
	model_calls INTEGER NOT NULL, 
	calls TEXT NOT NULL, 
	seal VARCHAR(64) NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (run_id)
);

CREATE TABLE runplane_runs (
	id VARCHAR(200) NOT NULL, 
	agent_name VARCHAR(500) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	input TEXT NOT NULL, 
	input_fingerprint VARCHAR(64) NOT NULL, 
	options TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	finished_at FLOAT, 
	owner VARCHAR(300), 
	lease_expires_at FLOAT, 
	model_calls INTEGER NOT NULL, 
	tool_calls INTEGER NOT NULL, 
	requests INTEGER NOT NULL, 
	input_tokens INTEGER NOT NULL, 
	output_tokens INTEGER NOT NULL, 
	total_tokens INTEGER NOT NULL, 
	final_output TEXT, 
	error_type VARCHAR(300), 
	error TEXT, 
	cancel_requested VARCHAR(16), 
	agent_ref VARCHAR(500), 
	queue VARCHAR(200), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_runplane_runs_created_at ON runplane_runs (created_at);

CREATE INDEX ix_runplane_runs_status ON runplane_runs (status);

CREATE TABLE runplane_schema (
	id SERIAL NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE runplane_session_items (
	session_id VARCHAR(200) NOT NULL, 
	position INTEGER NOT NULL, 
	item TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (session_id, position)
);

CREATE TABLE runplane_session_writes (
	session_id VARCHAR(200) NOT NULL, 
	write_key VARCHAR(300) NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (session_id, write_key)
);

CREATE TABLE runplane_tasks (
	id VARCHAR(64) NOT NULL, 
	run_id VARCHAR(200) NOT NULL, 
	call_key VARCHAR(300) NOT NULL, 
	queue VARCHAR(200) NOT NULL, 
	tool_name VARCHAR(500) NOT NULL, 
	call_id VARCHAR(300) NOT NULL, 
	arguments TEXT NOT NULL, 
	context TEXT, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	max_attempts INTEGER NOT NULL, 
	timeout FLOAT, 
	retry_delay FLOAT NOT NULL, 
	owner VARCHAR(300), 
	lease_expires_at FLOAT, 
	available_at FLOAT NOT NULL, 
	result TEXT, 
	error TEXT, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, call_key)
);

CREATE INDEX ix_runplane_tasks_claim ON runplane_tasks (queue, status, available_at);
