-- +goose Up
CREATE TABLE rotor.notes (
    id         uuid        PRIMARY KEY,
    owner      text        NOT NULL,
    title      text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Serves the owner-scoped lookups and the keyset pagination of List, which
-- filters on owner and orders by id.
CREATE INDEX notes_owner_id_idx ON rotor.notes (owner, id);

-- The default privileges that Bootstrap sets give rotor_app read and write
-- access to every table that rotor_owner creates, including goose's version
-- table, which goose created just before this migration. Runtime users have
-- no reason to read or change the migration history.
REVOKE ALL ON TABLE rotor.goose_db_version FROM rotor_app;

-- +goose Down
DROP TABLE rotor.notes;
