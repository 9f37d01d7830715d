CREATE TABLE "registry"."health_checks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"service_id" uuid NOT NULL,
	"checked_at" timestamp with time zone NOT NULL,
	"status" text NOT NULL,
	"latency_ms" integer,
	"http_status" integer,
	"error" text,
	"queue_size" integer
);
--> statement-breakpoint
CREATE TABLE "registry"."outbox" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "registry"."service_health" (
	"service_id" uuid PRIMARY KEY NOT NULL,
	"status" text NOT NULL,
	"status_since" timestamp with time zone NOT NULL,
	"checked_at" timestamp with time zone NOT NULL,
	"latency_ms" integer,
	"http_status" integer,
	"error" text,
	"queue_size" integer,
	"running_jobs" integer,
	"consecutive_failures" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "registry"."panels" ADD COLUMN "external_key" text;--> statement-breakpoint
ALTER TABLE "registry"."panels" ADD COLUMN "version" text;--> statement-breakpoint
ALTER TABLE "registry"."panels" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "registry"."panels" ADD COLUMN "qc_thresholds" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "registry"."services" ADD COLUMN "protocol_info" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "registry"."services" ADD COLUMN "synced_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "registry"."services" ADD COLUMN "retired_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "registry"."health_checks" ADD CONSTRAINT "health_checks_service_id_services_id_fk" FOREIGN KEY ("service_id") REFERENCES "registry"."services"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "registry"."service_health" ADD CONSTRAINT "service_health_service_id_services_id_fk" FOREIGN KEY ("service_id") REFERENCES "registry"."services"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "health_checks_service_checked" ON "registry"."health_checks" USING btree ("service_id","checked_at");--> statement-breakpoint
CREATE INDEX "health_checks_checked" ON "registry"."health_checks" USING btree ("checked_at");--> statement-breakpoint
CREATE INDEX "outbox_pending" ON "registry"."outbox" USING btree ("delivered_at","next_attempt_at");