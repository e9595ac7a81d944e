-- The SCEP registration authority (RA): an RSA-2048 certificate issued by the device CA that
-- devices encrypt their SCEP requests to and that signs the SCEP answers, so the CA's own
-- RSA-3072 key only signs certificates. Replaced (conditionally, so that processes sharing
-- the database agree on one) when it nears its end.
ALTER TABLE mdm_ca ADD COLUMN ra_certificate_pem TEXT;
ALTER TABLE mdm_ca ADD COLUMN ra_private_key_enc BYTEA;
