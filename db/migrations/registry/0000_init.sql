CREATE SCHEMA "registry";
--> statement-breakpoint
CREATE TABLE "registry"."panels" (
	"id" uuid PRIMARY KEY NOT NULL,
	"service_id" uuid NOT NULL,
	"external_id" text NOT NULL,
	"display_name" text NOT NULL,
	"build" text NOT NULL,
	"populations" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"samples" integer,
	"variants" integer,
	"retired_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "panels_service_external_id" UNIQUE("service_id","external_id")
);
--> statement-breakpoint
CREATE TABLE "registry"."services" (
	"id" uuid PRIMARY KEY NOT NULL,
	"slug" text NOT NULL,
	"name" text NOT NULL,
	"protocol" text NOT NULL,
	"base_url" text NOT NULL,
	"app_id" text DEFAULT 'imputationserver2' NOT NULL,
	"description" text,
	"homepage" text,
	"location_country" text,
	"location_city" text,
	"latitude" double precision,
	"longitude" double precision,
	"limits" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"supported_builds" text[] DEFAULT ARRAY[]::text[] NOT NULL,
	"credential_type" text NOT NULL,
	"is_active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "services_slug_unique" UNIQUE("slug")
);
--> statement-breakpoint
ALTER TABLE "registry"."panels" ADD CONSTRAINT "panels_service_id_services_id_fk" FOREIGN KEY ("service_id") REFERENCES "registry"."services"("id") ON DELETE no action ON UPDATE no action;