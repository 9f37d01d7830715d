CREATE TABLE "users"."outbox" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "users"."credentials" ADD COLUMN "expiry_notified_for" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "outbox_pending" ON "users"."outbox" USING btree ("delivered_at","next_attempt_at");