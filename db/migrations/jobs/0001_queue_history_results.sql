CREATE TABLE "jobs"."job_history" (
	"id" uuid PRIMARY KEY NOT NULL,
	"job_id" uuid NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"state" text NOT NULL,
	"message" text
);
--> statement-breakpoint
CREATE TABLE "jobs"."job_results" (
	"id" uuid PRIMARY KEY NOT NULL,
	"job_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"name" text NOT NULL,
	"source" jsonb NOT NULL,
	"size_bytes" bigint,
	"state" text DEFAULT 'pending' NOT NULL,
	"file_id" uuid,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "job_results_job_attempt_name" UNIQUE("job_id","attempt","name")
);
--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "target" jsonb;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "attempt" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "external_name" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "steps" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "error_hint" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "poll_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "lease_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "submit_started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "cancel_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "password_sealed" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "results_expire_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "idempotency_key" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "finished_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."job_history" ADD CONSTRAINT "job_history_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "jobs"."jobs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "jobs"."job_results" ADD CONSTRAINT "job_results_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "jobs"."jobs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "job_history_job_at" ON "jobs"."job_history" USING btree ("job_id","at");--> statement-breakpoint
CREATE INDEX "jobs_parent" ON "jobs"."jobs" USING btree ("parent_id");--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_user_idempotency_key" ON "jobs"."jobs" USING btree ("user_id","idempotency_key") WHERE idempotency_key is not null;