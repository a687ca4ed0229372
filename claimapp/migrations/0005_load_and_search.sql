-- Every search kind (recipient, care month, institution, and recipient or institution with a
-- care month) walks one index in the results' own order, newest care month first and then the
-- newest receipt, and stops after one page: no search sorts or reads more than a page of rows.
-- The institution is kept on each receipt so that its search needs no join; the composite key
-- below keeps it equal to the claim file's.
ALTER TABLE claim_files ADD CONSTRAINT claim_files_id_institution UNIQUE (id, institution_code);

ALTER TABLE receipts ADD COLUMN institution_code char(7);
UPDATE receipts r SET institution_code = f.institution_code
    FROM claim_files f WHERE f.id = r.claim_file_id;
ALTER TABLE receipts ALTER COLUMN institution_code SET NOT NULL;
ALTER TABLE receipts DROP CONSTRAINT receipts_claim_file_id_fkey;
ALTER TABLE receipts ADD CONSTRAINT receipts_claim_file FOREIGN KEY (claim_file_id, institution_code)
    REFERENCES claim_files (id, institution_code);

DROP INDEX receipts_by_recipient;
DROP INDEX receipts_by_month;
CREATE INDEX receipts_by_recipient ON receipts (recipient_number, care_month, id);
CREATE INDEX receipts_by_month ON receipts (care_month, id);
CREATE INDEX receipts_by_institution ON receipts (institution_code, care_month, id);

-- A detail is the n-th line of its receipt: (receipt_id, position) is its key, and the key's
-- index also serves the receipt page's read in order. The surrogate id and its sequence cost
-- every load and served nothing.
ALTER TABLE receipt_details DROP COLUMN id;
ALTER TABLE receipt_details ADD PRIMARY KEY (receipt_id, position);
DROP INDEX receipt_details_by_receipt;
