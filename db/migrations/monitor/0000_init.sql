CREATE SCHEMA "monitor";
--> statement-breakpoint
CREATE TABLE "monitor"."probes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"service" text NOT NULL,
	"status" text NOT NULL,
	"latency_ms" double precision,
	"http_status" integer,
	"failed_check" text,
	"checked_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "probes_service_checked" ON "monitor"."probes" USING btree ("service","checked_at");