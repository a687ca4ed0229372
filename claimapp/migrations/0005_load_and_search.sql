-- Loading a month and searching a million receipts.
--
-- A receipt's diagnoses, procedures and drugs are lines of that receipt, in file order, never
-- read without it: they move into the receipt as one JSON array ({record, code, fields}), so a
-- receipt loads as one row, not one row per line each checked against its receipt.
--
-- Every search kind (recipient, care month, institution, and recipient or institution with a
-- care month) walks one index in the results' own order, newest care month first and then the
-- newest receipt, and stops after one page: no search sorts or reads more than a page of rows.
-- The institution is kept on each receipt so that its search needs no join; the composite key
-- below keeps it equal to the claim file's.
ALTER TABLE claim_files ADD CONSTRAINT claim_files_id_institution UNIQUE (id, institution_code);

ALTER TABLE receipts ADD COLUMN institution_code char(7), ADD COLUMN details jsonb;
UPDATE receipts r SET
    institution_code = (SELECT f.institution_code FROM claim_files f WHERE f.id = r.claim_file_id),
    details = coalesce((SELECT jsonb_agg(jsonb_build_object('record', d.record, 'code', d.code,
                                                            'fields', to_jsonb(d.fields))
                                         ORDER BY d.position)
                        FROM receipt_details d WHERE d.receipt_id = r.id), '[]');
ALTER TABLE receipts ALTER COLUMN institution_code SET NOT NULL,
    ALTER COLUMN details SET NOT NULL,
    ADD CONSTRAINT receipts_details_are_a_list CHECK (jsonb_typeof(details) = 'array');
DROP TABLE receipt_details;

ALTER TABLE receipts DROP CONSTRAINT receipts_claim_file_id_fkey;
ALTER TABLE receipts ADD CONSTRAINT receipts_claim_file FOREIGN KEY (claim_file_id, institution_code)
    REFERENCES claim_files (id, institution_code);

DROP INDEX receipts_by_recipient;
DROP INDEX receipts_by_month;
CREATE INDEX receipts_by_recipient ON receipts (recipient_number, care_month, id);
CREATE INDEX receipts_by_month ON receipts (care_month, id);
CREATE INDEX receipts_by_institution ON receipts (institution_code, care_month, id);
