ALTER TABLE "files"."stored_files" ADD COLUMN "result_key" text;--> statement-breakpoint
ALTER TABLE "files"."stored_files" ADD CONSTRAINT "stored_files_result_key_unique" UNIQUE("result_key");