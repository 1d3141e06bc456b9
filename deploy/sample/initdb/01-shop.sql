-- The optional sample target (docker compose --profile sample): a small shop in schema `shop`, and
-- a schema `internal` the read-only role is not given (sqlagent cannot see or query it).
-- Deterministic: the same rows on every fresh volume.

CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS 'A small online shop: customers, products, orders';

CREATE TABLE shop.categories (
    id   integer PRIMARY KEY,
    name text NOT NULL UNIQUE
);
COMMENT ON TABLE shop.categories IS 'Product categories of the catalogue';

CREATE TABLE shop.products (
    id          integer PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    category_id integer NOT NULL REFERENCES shop.categories (id),
    unit_price  numeric(10, 2) NOT NULL CHECK (unit_price > 0)
);
COMMENT ON TABLE shop.products IS 'Items for sale';
COMMENT ON COLUMN shop.products.unit_price IS 'current list price, USD';

CREATE TABLE shop.customers (
    id         integer PRIMARY KEY,
    name       text NOT NULL,
    country    text NOT NULL,
    created_at timestamptz NOT NULL
);
COMMENT ON TABLE shop.customers IS 'People who registered in the web shop';

CREATE TABLE shop.orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES shop.customers (id),
    status      text NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled')),
    ordered_at  timestamptz NOT NULL
);
COMMENT ON TABLE shop.orders IS 'One checkout by a customer; its total is the sum of its order_items';

CREATE TABLE shop.order_items (
    order_id   integer NOT NULL REFERENCES shop.orders (id),
    product_id integer NOT NULL REFERENCES shop.products (id),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL CHECK (unit_price > 0),
    PRIMARY KEY (order_id, product_id)
);
COMMENT ON TABLE shop.order_items IS 'Lines of an order; line revenue = quantity * unit_price';
COMMENT ON COLUMN shop.order_items.unit_price IS 'price paid per unit, USD';

INSERT INTO shop.categories (id, name)
VALUES (1, 'Audio'), (2, 'Books'), (3, 'Garden'), (4, 'Kitchen'), (5, 'Toys');

INSERT INTO shop.products (id, name, category_id, unit_price)
SELECT i, format('%s item %s', c.name, i), c.id, round((5 + (i * 37) % 195)::numeric + 0.99, 2)
FROM generate_series(1, 40) AS i
JOIN shop.categories c ON c.id = 1 + i % 5;

INSERT INTO shop.customers (id, name, country, created_at)
SELECT i,
       format('Customer %s', i),
       (ARRAY['Germany', 'France', 'Spain', 'United States', 'Japan', 'Brazil'])[1 + i % 6],
       timestamptz '2023-01-01 00:00+00' + make_interval(hours => i * 97)
FROM generate_series(1, 200) AS i;

INSERT INTO shop.orders (id, customer_id, status, ordered_at)
SELECT i,
       1 + (i * 7919) % 200,
       (ARRAY['delivered', 'delivered', 'delivered', 'shipped', 'pending', 'cancelled'])[1 + i % 6],
       timestamptz '2024-01-01 00:00+00' + make_interval(mins => i * 521)
FROM generate_series(1, 1000) AS i;

INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, p.id, 1 + (o.id + p.id) % 4, p.unit_price
FROM shop.orders o
JOIN shop.products p ON p.id IN (1 + o.id % 40, 1 + (o.id * 13) % 40);

CREATE SCHEMA internal;
CREATE TABLE internal.staff_salaries (employee text PRIMARY KEY, salary integer NOT NULL);
INSERT INTO internal.staff_salaries VALUES ('ann', 98000), ('bo', 87000);
