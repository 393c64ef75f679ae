-- A database written by bot/store.py before the store became a package
-- (schema version 2, slack_drafts never used).
BEGIN TRANSACTION;
CREATE TABLE "audit" (
   "id" INTEGER PRIMARY KEY,
   "at" REAL,
   "actor" TEXT,
   "action" TEXT,
   "detail" TEXT
);
INSERT INTO "audit" VALUES(1,1700000000.0,'U1','campaign.created','{"campaign_id": 1, "template": "welcome", "total": 3, "team": "T1"}');
INSERT INTO "audit" VALUES(2,1700000020.0,'one-click','unsubscribe.added','{"email": "cy@example.com"}');
INSERT INTO "audit" VALUES(3,1700000020.0,'bounce-scan','bounce.recorded','{"message": 1, "email": "ann@example.com", "kind": "hard", "status": "5.1.1"}');
CREATE TABLE "bounces" (
   "id" INTEGER PRIMARY KEY,
   "message_row_id" INTEGER,
   "email" TEXT,
   "kind" TEXT,
   "status" TEXT,
   "diagnostic" TEXT,
   "provider_id" TEXT,
   "created_at" REAL
);
INSERT INTO "bounces" VALUES(1,1,'ann@example.com','hard','5.1.1','','g-1',1700000020.0);
CREATE TABLE "campaigns" (
   "id" INTEGER PRIMARY KEY,
   "created_at" REAL NOT NULL,
   "requested_by" TEXT NOT NULL,
   "team" TEXT,
   "template" TEXT NOT NULL,
   "category" TEXT,
   "subject" TEXT,
   "common_vars" TEXT,
   "status" TEXT NOT NULL,
   "total" INTEGER,
   "paused_reason" TEXT,
   "started_at" REAL,
   "finished_at" REAL,
   "idempotency_key" TEXT,
   "status_channel" TEXT,
   "status_ts" TEXT,
   "correlation_id" TEXT
);
INSERT INTO "campaigns" VALUES(1,1700000000.0,'U1','T1','welcome','marketing','Hi','{"team": "Acme"}','running',3,NULL,NULL,NULL,'slack:abc','C1','111.222','r1');
CREATE TABLE "messages" (
   "id" INTEGER PRIMARY KEY,
   "campaign_id" INTEGER NOT NULL REFERENCES "campaigns"("id"),
   "position" INTEGER,
   "email" TEXT NOT NULL,
   "name" TEXT,
   "variables" TEXT,
   "state" TEXT NOT NULL,
   "attempts" INTEGER DEFAULT 0,
   "last_error" TEXT,
   "provider_id" TEXT,
   "message_id" TEXT NOT NULL,
   "not_before" REAL,
   "created_at" REAL,
   "updated_at" REAL,
   "sent_at" REAL,
   "bounce" TEXT
, "claimed_at" REAL);
INSERT INTO "messages" VALUES(1,1,0,'ann@example.com','Ann','{"plan": "pro"}','sent',1,NULL,'gm-1','<m1@x>',NULL,1700000000.0,1700000010.0,1700000010.0,'hard',1700000010.0);
INSERT INTO "messages" VALUES(2,1,1,'bob@example.com','','{}','sending',1,NULL,NULL,'<m2@x>',NULL,1700000000.0,1700000020.0,NULL,NULL,1700000020.0);
INSERT INTO "messages" VALUES(3,1,2,'cy@example.com','','{}','skipped',0,'has unsubscribed',NULL,'<m3@x>',NULL,1700000000.0,1700000000.0,NULL,NULL,NULL);
CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
INSERT INTO "meta" VALUES('schema_version','2');
CREATE TABLE "quota_log" (
   "at" REAL,
   "units" INTEGER,
   "method" TEXT
);
INSERT INTO "quota_log" VALUES(1700000020.0,100,'messages.send');
CREATE TABLE "unsubscribes" (
   "email" TEXT PRIMARY KEY,
   "source" TEXT,
   "campaign_id" INTEGER,
   "created_at" REAL
);
INSERT INTO "unsubscribes" VALUES('cy@example.com','one-click',1,1700000020.0);
CREATE UNIQUE INDEX "idx_campaigns_idempotency_key"
    ON "campaigns" ("idempotency_key");
CREATE INDEX "idx_campaigns_status"
    ON "campaigns" ("status");
CREATE INDEX "idx_messages_campaign_id_state"
    ON "messages" ("campaign_id", "state");
CREATE UNIQUE INDEX "idx_messages_message_id"
    ON "messages" ("message_id");
CREATE INDEX "idx_messages_sent_at"
    ON "messages" ("sent_at");
CREATE INDEX "idx_messages_email"
    ON "messages" ("email");
CREATE UNIQUE INDEX "idx_bounces_provider_id"
    ON "bounces" ("provider_id");
CREATE INDEX "idx_bounces_email"
    ON "bounces" ("email");
CREATE INDEX "idx_quota_log_at"
    ON "quota_log" ("at");
COMMIT;
