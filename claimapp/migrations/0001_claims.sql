-- Claim files as delivered by the fund, their receipts, and each receipt's details.
CREATE TABLE claim_files (
    id               bigserial PRIMARY KEY,
    sha256           char(64) NOT NULL UNIQUE,  -- a file is loaded once, whatever its name
    file_name        text NOT NULL,
    payer_org        char(1) NOT NULL,
    prefecture       char(2) NOT NULL,
    institution_code char(7) NOT NULL,
    institution_name text NOT NULL,
    billing_month    date NOT NULL,
    receipt_count    integer NOT NULL,
    total_points     bigint NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE receipts (
    id               bigserial PRIMARY KEY,
    claim_file_id    bigint NOT NULL REFERENCES claim_files (id),
    receipt_number   integer NOT NULL,
    receipt_type     char(4) NOT NULL,
    care_month       date NOT NULL,
    patient_name     text NOT NULL,
    sex              char(1) NOT NULL,
    birth_date       date NOT NULL,
    payer_number     char(8) NOT NULL,
    recipient_number char(7) NOT NULL,
    days             integer NOT NULL,
    points           integer NOT NULL,
    UNIQUE (claim_file_id, receipt_number)
);
CREATE INDEX receipts_by_recipient ON receipts (recipient_number, care_month);
CREATE INDEX receipts_by_month ON receipts (care_month);

CREATE TABLE receipt_details (
    id         bigserial PRIMARY KEY,
    receipt_id bigint NOT NULL REFERENCES receipts (id),
    position   integer NOT NULL,
    record     char(2) NOT NULL CHECK (record IN ('SY', 'SI', 'IY')),
    code       text NOT NULL,
    fields     text[] NOT NULL
);
CREATE INDEX receipt_details_by_receipt ON receipt_details (receipt_id);
