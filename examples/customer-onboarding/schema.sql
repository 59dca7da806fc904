-- Tables the customer-onboarding steps write. Apply once: psql "$ONBOARDING_DATABASE_URL" -f schema.sql
CREATE TABLE IF NOT EXISTS corporate_customers (
  id UUID PRIMARY KEY,
  company_name TEXT NOT NULL,
  contact_email TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS users (
  id UUID PRIMARY KEY,
  customer_id UUID NOT NULL REFERENCES corporate_customers (id),
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS user_roles (
  user_id UUID NOT NULL REFERENCES users (id),
  role TEXT NOT NULL,
  PRIMARY KEY (user_id, role)
);
CREATE TABLE IF NOT EXISTS touchpoints (
  customer_id UUID NOT NULL REFERENCES corporate_customers (id),
  kind TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, kind)
);
