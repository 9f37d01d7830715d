CREATE TABLE "files"."file_holds" (
	"file_id" uuid NOT NULL,
	"job_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "file_holds_file_id_job_id_pk" PRIMARY KEY("file_id","job_id")
);
--> statement-breakpoint
ALTER TABLE "files"."file_holds" ADD CONSTRAINT "file_holds_file_id_stored_files_id_fk" FOREIGN KEY ("file_id") REFERENCES "files"."stored_files"("id") ON DELETE cascade ON UPDATE no action;