CREATE TABLE "users"."credentials" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" uuid NOT NULL,
	"service_id" text NOT NULL,
	"type" text NOT NULL,
	"label" text,
	"sealed" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"verified_at" timestamp with time zone,
	"verification_ok" boolean,
	"verification_message" text,
	CONSTRAINT "credentials_user_service" UNIQUE("user_id","service_id")
);
--> statement-breakpoint
ALTER TABLE "users"."credentials" ADD CONSTRAINT "credentials_user_id_accounts_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"."accounts"("id") ON DELETE no action ON UPDATE no action;