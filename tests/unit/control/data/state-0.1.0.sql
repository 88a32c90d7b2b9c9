-- A control-plane state database written by llmos 0.1.0 (before versioned migrations), with a few
-- rows in every table; tests/unit/control/test_control_migrations.py upgrades it.
BEGIN TRANSACTION;
CREATE TABLE attempts (
	id INTEGER NOT NULL, 
	job_id INTEGER NOT NULL, 
	number INTEGER NOT NULL, 
	started_s FLOAT NOT NULL, 
	ended_s FLOAT, 
	exit_code INTEGER, 
	outcome VARCHAR(16), 
	pid INTEGER, 
	placement TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_attempt UNIQUE (job_id, number), 
	FOREIGN KEY(job_id) REFERENCES jobs (id)
);
INSERT INTO "attempts" VALUES(1,1,1,1767225601.0,1767225602.0,0,'SUCCEEDED',4242,'{"workers": [{"cores": [0], "gpus": []}]}');
CREATE TABLE audit (
	id INTEGER NOT NULL, 
	at_s FLOAT NOT NULL, 
	actor VARCHAR(100) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	target VARCHAR(200) NOT NULL, 
	source VARCHAR(100) NOT NULL, 
	outcome VARCHAR(16) NOT NULL, 
	detail TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "audit" VALUES(1,1767225605.0,'ann','developer','submit','job 2','127.0.0.1:5','ok','');
CREATE TABLE completions (
	job_id INTEGER NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	at_s FLOAT NOT NULL, 
	exit_code INTEGER, 
	PRIMARY KEY (job_id), 
	FOREIGN KEY(job_id) REFERENCES jobs (id)
);
INSERT INTO "completions" VALUES(1,'SUCCEEDED',1767225602.0,0);
CREATE TABLE deployments (
	name VARCHAR(100) NOT NULL, 
	owner VARCHAR(100) NOT NULL, 
	model_ref VARCHAR(300) NOT NULL, 
	spec TEXT NOT NULL, 
	front_port INTEGER NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	created_s FLOAT NOT NULL, 
	updated_s FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "deployments" VALUES('tiny','admin','tiny@prod','{"kind": "serve", "model": "tiny@prod", "name": "tiny"}',9000,'STOPPED',1767225600.0,1767225600.0);
CREATE TABLE jobs (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	owner VARCHAR(100) NOT NULL, 
	project VARCHAR(100) NOT NULL, 
	priority INTEGER NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	spec TEXT NOT NULL, 
	workers INTEGER NOT NULL, 
	cpus FLOAT NOT NULL, 
	memory_gb FLOAT NOT NULL, 
	gpus INTEGER NOT NULL, 
	max_retries INTEGER NOT NULL, 
	attempt INTEGER NOT NULL, 
	failures INTEGER NOT NULL, 
	submit_s FLOAT NOT NULL, 
	updated_s FLOAT NOT NULL, 
	not_before_s FLOAT NOT NULL, 
	placement TEXT, 
	process TEXT, 
	stop_s FLOAT, 
	holds BOOLEAN NOT NULL, 
	exit_code INTEGER, 
	reason TEXT NOT NULL, 
	run_dir TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO "jobs" VALUES(1,'hello','command','admin','admin',1,'SUCCEEDED','{"kind": "command", "name": "hello", "run": ["echo", "hi"]}',1,1.0,0.0,0,2,1,0,1767225600.0,1767225602.0,0.0,'{"workers": [{"cores": [0], "gpus": []}]}',NULL,NULL,0,0,'exited 0',NULL);
INSERT INTO "jobs" VALUES(2,'sentiment','train','ann','nlp',2,'QUEUED','{"kind": "train", "name": "sentiment", "data": {"train": "/data/train.csv"}}',1,1.0,0.0,0,2,0,0,1767225605.0,1767225605.0,0.0,NULL,NULL,NULL,0,NULL,'submitted','/runs/sentiment-2');
CREATE TABLE tokens (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	owner VARCHAR(100) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	created_s FLOAT NOT NULL, 
	prefix VARCHAR(16), 
	last_used_s FLOAT, 
	revoked_s FLOAT, 
	PRIMARY KEY (id), 
	UNIQUE (digest)
);
INSERT INTO "tokens" VALUES(1,'admin','admin','admin','0000000000000000000000000000000000000000000000000000000000000000',1767225600.0,'llmos_AAAAAA',NULL,NULL);
INSERT INTO "tokens" VALUES(2,'ann','ann','developer','1111111111111111111111111111111111111111111111111111111111111111',1767225600.0,'llmos_BBBBBB',1767225603.0,NULL);
CREATE TABLE transitions (
	id INTEGER NOT NULL, 
	job_id INTEGER NOT NULL, 
	at_s FLOAT NOT NULL, 
	from_state VARCHAR(16), 
	to_state VARCHAR(16) NOT NULL, 
	attempt INTEGER NOT NULL, 
	reason TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(job_id) REFERENCES jobs (id)
);
INSERT INTO "transitions" VALUES(1,1,1767225600.0,NULL,'QUEUED',0,'submitted');
INSERT INTO "transitions" VALUES(2,1,1767225601.0,'QUEUED','STARTING',1,'placed');
INSERT INTO "transitions" VALUES(3,1,1767225602.0,'STARTING','RUNNING',1,'started');
INSERT INTO "transitions" VALUES(4,1,1767225603.0,'RUNNING','SUCCEEDED',1,'exited 0');
INSERT INTO "transitions" VALUES(5,2,1767225604.0,NULL,'QUEUED',0,'submitted');
CREATE INDEX ix_jobs_state ON jobs (state);
CREATE INDEX ix_jobs_owner ON jobs (owner);
CREATE INDEX ix_transitions_job_id ON transitions (job_id);
CREATE INDEX ix_attempts_job_id ON attempts (job_id);
CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions BEGIN SELECT RAISE(ABORT, 'transitions is append-only'); END;
CREATE TRIGGER transitions_no_delete BEFORE DELETE ON transitions BEGIN SELECT RAISE(ABORT, 'transitions is append-only'); END;
CREATE TRIGGER completions_no_update BEFORE UPDATE ON completions BEGIN SELECT RAISE(ABORT, 'completions is append-only'); END;
CREATE TRIGGER completions_no_delete BEFORE DELETE ON completions BEGIN SELECT RAISE(ABORT, 'completions is append-only'); END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
COMMIT;
