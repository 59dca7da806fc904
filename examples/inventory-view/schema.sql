-- The shop's tables. REPLICA IDENTITY FULL gives updates their `before` row, which the restock
-- rule reads (stock after − stock before).
-- The seed's item shape: id, name, description, price, stock_quantity; the view adds when each
-- change was committed (last_updated) and read (cdc_timestamp).
CREATE TABLE products (
  id integer PRIMARY KEY,
  name text NOT NULL,
  description text,
  price numeric(10, 2) NOT NULL,
  stock_quantity integer NOT NULL
);
ALTER TABLE products REPLICA IDENTITY FULL;

CREATE TABLE order_items (
  id serial PRIMARY KEY,
  product_id integer NOT NULL,
  quantity integer NOT NULL
);
ALTER TABLE order_items REPLICA IDENTITY FULL;
