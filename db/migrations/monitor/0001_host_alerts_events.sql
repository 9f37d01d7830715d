CREATE TABLE "monitor"."alerts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"rule" text NOT NULL,
	"subject" text NOT NULL,
	"severity" text NOT NULL,
	"title" text NOT NULL,
	"message" text NOT NULL,
	"value" double precision,
	"threshold" double precision,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"state" text DEFAULT 'active' NOT NULL,
	"raised_at" timestamp with time zone NOT NULL,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" uuid,
	"resolved_at" timestamp with time zone,
	"resolved_by" text,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "monitor"."host_samples" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"sampled_at" timestamp with time zone NOT NULL,
	"cpu_percent" double precision,
	"cpu_count" integer NOT NULL,
	"load_1" double precision NOT NULL,
	"load_5" double precision NOT NULL,
	"load_15" double precision NOT NULL,
	"memory_total_bytes" double precision NOT NULL,
	"memory_available_bytes" double precision NOT NULL,
	"memory_percent" double precision NOT NULL,
	"disks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"network_rx_bytes_per_sec" double precision,
	"network_tx_bytes_per_sec" double precision
);
--> statement-breakpoint
CREATE TABLE "monitor"."outbox" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "monitor"."received_events" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"source" text NOT NULL,
	"payload" jsonb NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "alerts_one_active" ON "monitor"."alerts" USING btree ("rule","subject") WHERE state = 'active';--> statement-breakpoint
CREATE INDEX "alerts_state_raised" ON "monitor"."alerts" USING btree ("state","raised_at");--> statement-breakpoint
CREATE INDEX "host_samples_sampled" ON "monitor"."host_samples" USING btree ("sampled_at");--> statement-breakpoint
CREATE INDEX "outbox_pending" ON "monitor"."outbox" USING btree ("delivered_at","next_attempt_at");--> statement-breakpoint
CREATE INDEX "received_events_type_received" ON "monitor"."received_events" USING btree ("type","received_at");--> statement-breakpoint
CREATE INDEX "probes_checked" ON "monitor"."probes" USING btree ("checked_at");