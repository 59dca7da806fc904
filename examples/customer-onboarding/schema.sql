-- Tables the customer-onboarding steps write, with the reference data they check against.
-- Apply once (idempotent): node examples/customer-onboarding/setup.mjs, or
-- psql "$ONBOARDING_DATABASE_URL" -f examples/customer-onboarding/schema.sql

-- What a customer may subscribe to; a registration naming another tier is refused by the database.
CREATE TABLE IF NOT EXISTS subscription_tiers (
  name TEXT PRIMARY KEY,
  max_users INTEGER, -- NULL: no limit
  monthly_price_cents INTEGER NOT NULL CHECK (monthly_price_cents >= 0),
  description TEXT NOT NULL
);
INSERT INTO subscription_tiers (name, max_users, monthly_price_cents, description) VALUES
  ('basic', 5, 0, 'Up to five users, community support'),
  ('professional', 50, 4900, 'Up to fifty users, business-hours support'),
  ('enterprise', NULL, 19900, 'Unlimited users, around-the-clock support, a named account manager')
ON CONFLICT (name) DO NOTHING;

-- The roles a user may hold (the catalogue); assignments are in user_role_assignments.
CREATE TABLE IF NOT EXISTS user_roles (
  name TEXT PRIMARY KEY,
  description TEXT NOT NULL
);
INSERT INTO user_roles (name, description) VALUES
  ('admin', 'Manages the company account, its users and their roles'),
  ('billing', 'Sees invoices and changes the payment method'),
  ('member', 'Uses the product'),
  ('viewer', 'Reads dashboards and reports only')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS corporate_customers (
  id UUID PRIMARY KEY,
  company_name TEXT NOT NULL,
  contact_email TEXT NOT NULL,
  subscription_tier TEXT NOT NULL REFERENCES subscription_tiers (name),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
  id UUID PRIMARY KEY,
  customer_id UUID NOT NULL REFERENCES corporate_customers (id),
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_role_assignments (
  user_id UUID NOT NULL REFERENCES users (id),
  role TEXT NOT NULL REFERENCES user_roles (name),
  assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, role)
);

-- CRM activity: one row per onboarding touchpoint of a customer.
CREATE TABLE IF NOT EXISTS touchpoints (
  customer_id UUID NOT NULL REFERENCES corporate_customers (id),
  kind TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, kind)
);
