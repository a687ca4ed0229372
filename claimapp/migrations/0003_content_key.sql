-- A month re-sent in other bytes (line endings, blank lines) is the same claim: the content key
-- is the SHA-256 of institution, billing month, receipt count, total points and receipt
-- numbers (claimapp.uke.ClaimFile.content_key). Files loaded before it have none.
ALTER TABLE claim_files ADD COLUMN content_key char(64) UNIQUE;
