BEGIN TRANSACTION;
CREATE TABLE "actions" (
   "seq" INTEGER PRIMARY KEY,
   "event_id" TEXT NOT NULL,
   "run_id" TEXT NOT NULL,
   "timestamp" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "target" TEXT,
   "digest_before" TEXT,
   "digest_after" TEXT,
   "policy" TEXT,
   "reason" TEXT,
   "status" TEXT NOT NULL,
   "error" TEXT,
   "duration" REAL,
   "dry_run" INTEGER,
   "intent_id" TEXT,
   "prev_hash" TEXT,
   "hash" TEXT
);
INSERT INTO "actions" VALUES(2,'evt-20261203T083012-cf70ca16','run-20261203T083012-d159a18f','2026-11-10T08:00:01.000000Z','prune','ci/team-a/web@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',NULL,'RetentionPolicy/ci-cleanup','no keep rule or protection applies to build-1, build-2','intent',NULL,NULL,0,NULL,'d7b5eb193a0ee0de17e0fd6aec2c5d314de3cca2fbff807548d7b91d10130d26','942d08adf53c8280a27e1d86a9df5be040c5d246e3e8b83345ad2f31b2a77d09');
INSERT INTO "actions" VALUES(3,'evt-20261203T083012-a757cb21','run-20261203T083012-d159a18f','2026-11-10T08:00:02.000000Z','prune','ci/team-a/web@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',NULL,'RetentionPolicy/ci-cleanup','no keep rule or protection applies to build-1, build-2','succeeded',NULL,3.94300002426462e-06,0,'evt-20261203T083012-cf70ca16','942d08adf53c8280a27e1d86a9df5be040c5d246e3e8b83345ad2f31b2a77d09','fa627b20bab066fa72a04fa0b0083f0e5ad7a500cdec0ae40789c969152703cf');
INSERT INTO "actions" VALUES(4,'evt-20261203T083012-25d0ffa3','run-20261203T083012-d159a18f','2026-11-10T08:00:03.000000Z','untag','ci/team-a/web:build-3','sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',NULL,'RetentionPolicy/ci-cleanup','no rule keeps it; its digest stays for v1','intent',NULL,NULL,0,NULL,'fa627b20bab066fa72a04fa0b0083f0e5ad7a500cdec0ae40789c969152703cf','786ad336423ee8dd09f2a67d54101235c45248e5916a8b0f897f6be00a45e604');
INSERT INTO "actions" VALUES(5,'evt-20261203T083012-bc79e6e1','run-20261203T083012-d159a18f','2026-11-10T08:00:04.000000Z','untag','ci/team-a/web:build-3','sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',NULL,'RetentionPolicy/ci-cleanup','no rule keeps it; its digest stays for v1','succeeded',NULL,2.11499997249120497144e-06,0,'evt-20261203T083012-25d0ffa3','786ad336423ee8dd09f2a67d54101235c45248e5916a8b0f897f6be00a45e604','7ef4548050f1635a1e9850fe8202118da0590f8065e42f671c2aeac77ff37f4e');
INSERT INTO "actions" VALUES(6,'evt-20261203T083012-ff421508','run-20261203T083012-d159a18f','2026-11-10T08:00:05.000000Z','skip','ci',NULL,NULL,'RetentionPolicy/ci-cleanup','registry ci could not be read','skipped',NULL,NULL,0,NULL,'7ef4548050f1635a1e9850fe8202118da0590f8065e42f671c2aeac77ff37f4e','1d947a5931ebb285d40e0ebc6499dfca26bf7e390cf1fd67a283f9c3e031a366');
INSERT INTO "actions" VALUES(7,'evt-20261203T083012-76a25587','run-20261203T083012-d159a18f','2026-11-10T08:00:06.000000Z','promote','prod/team-a/web@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc',NULL,'sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc','PromotionPolicy/web','126 from staging to prod','intent',NULL,NULL,0,NULL,'1d947a5931ebb285d40e0ebc6499dfca26bf7e390cf1fd67a283f9c3e031a366','4681cce13e522cd982115d6e735c20745a973a23066c68648f304f400ef44a50');
INSERT INTO "actions" VALUES(8,'evt-20261203T083012-74b5c158','run-20261203T083012-d159a18f','2026-11-10T08:00:07.000000Z','promote','prod/team-a/web@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc',NULL,'sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc','PromotionPolicy/web','126 from staging to prod','failed','RuntimeError: registry returned 500',1.43720000096436706371e-05,0,'evt-20261203T083012-76a25587','4681cce13e522cd982115d6e735c20745a973a23066c68648f304f400ef44a50','9a9e4079ae92aad989631d620aec6a34edc08b384b7a677fc50ec39eea4bac5d');
CREATE TABLE "run_ends" (
   "seq" INTEGER PRIMARY KEY,
   "run_id" TEXT NOT NULL,
   "finished_at" TEXT NOT NULL,
   "outcome" TEXT,
   "summary" TEXT,
   "prev_hash" TEXT,
   "hash" TEXT
);
INSERT INTO "run_ends" VALUES(9,'run-20261203T083012-d159a18f','2026-11-10T08:00:08.000000Z','failed','{"promote.failed": 1, "prune.succeeded": 1, "skip.skipped": 1, "untag.succeeded": 1}','9a9e4079ae92aad989631d620aec6a34edc08b384b7a677fc50ec39eea4bac5d','f500a660ab343b619a80a06ecef4a75b6ccb3bf82e3a68e12d9266ec6a591d77');
CREATE TABLE "run_starts" (
   "seq" INTEGER PRIMARY KEY,
   "run_id" TEXT NOT NULL,
   "mode" TEXT,
   "actor" TEXT,
   "host" TEXT,
   "pid" INTEGER,
   "repo_url" TEXT,
   "repo_commit" TEXT,
   "started_at" TEXT NOT NULL,
   "dry_run" INTEGER,
   "prev_hash" TEXT,
   "hash" TEXT
);
INSERT INTO "run_starts" VALUES(1,'run-20261203T083012-d159a18f','apply','cronjob','cronjob-pod-1',4242,'https://git.example.com/team-a/policies.git','1111111111111111111111111111111111111111','2026-11-10T08:00:00.000000Z',0,'0000000000000000000000000000000000000000000000000000000000000000','d7b5eb193a0ee0de17e0fd6aec2c5d314de3cca2fbff807548d7b91d10130d26');
CREATE TABLE schema_versions (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO "schema_versions" VALUES(1,'2026-12-03T08:30:12.148144Z');
CREATE UNIQUE INDEX "idx_run_starts_run_id"
    ON "run_starts" ("run_id");
CREATE UNIQUE INDEX "idx_run_ends_run_id"
    ON "run_ends" ("run_id");
CREATE UNIQUE INDEX "idx_actions_event_id"
    ON "actions" ("event_id");
CREATE INDEX "idx_actions_run_id"
    ON "actions" ("run_id");
CREATE INDEX "idx_actions_timestamp"
    ON "actions" ("timestamp");
CREATE INDEX "idx_actions_kind_timestamp"
    ON "actions" ("kind", "timestamp");
CREATE INDEX "idx_actions_target"
    ON "actions" ("target");
CREATE INDEX "idx_actions_intent_id"
    ON "actions" ("intent_id");
CREATE TRIGGER run_starts_no_update BEFORE UPDATE ON run_starts BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE on run_starts refused'); END;
CREATE TRIGGER run_starts_no_delete BEFORE DELETE ON run_starts BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE on run_starts refused'); END;
CREATE TRIGGER actions_no_update BEFORE UPDATE ON actions BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE on actions refused'); END;
CREATE TRIGGER actions_no_delete BEFORE DELETE ON actions BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE on actions refused'); END;
CREATE TRIGGER run_ends_no_update BEFORE UPDATE ON run_ends BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE on run_ends refused'); END;
CREATE TRIGGER run_ends_no_delete BEFORE DELETE ON run_ends BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE on run_ends refused'); END;
CREATE VIEW runs AS
        SELECT s.run_id AS id, s.mode, s.actor, s.host, s.pid, s.repo_url, s.repo_commit,
               s.dry_run, s.started_at, e.finished_at, COALESCE(e.outcome, 'unfinished') AS outcome,
               e.summary, e.hash AS chain_head
        FROM run_starts s LEFT JOIN run_ends e ON e.run_id = s.run_id;
CREATE VIEW pending_intents AS
        SELECT i.* FROM actions i
        WHERE i.status = 'intent'
          AND NOT EXISTS (SELECT 1 FROM actions o WHERE o.intent_id = i.event_id);
COMMIT;
