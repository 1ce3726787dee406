-- Dataset "wide": 12 columns of mixed types (bigint pk, int, bigint, numeric(12,2), double
-- precision, text, varchar(64), bool, date, timestamptz, jsonb, uuid), some NULLs, text with
-- commas and quotes. Same key layout as narrow.sql (:N base rows, load = ids :H+1 .. :H+:N
-- shuffled by md5 of the id). Deterministic.
CREATE TABLE base (
    id     bigint PRIMARY KEY,
    c_int  integer NOT NULL,
    c_big  bigint NOT NULL,
    c_num  numeric(12,2) NOT NULL,
    c_dbl  double precision NOT NULL,
    c_text text,
    c_vc   varchar(64),
    c_bool boolean NOT NULL,
    c_date date NOT NULL,
    c_ts   timestamptz NOT NULL,
    c_json jsonb,
    c_uuid uuid NOT NULL
);
INSERT INTO base
SELECT i,
       (i % 1000000)::int,
       i * 1000,
       (i % 100000) * 1.25,
       i / 3.0::float8,
       'base text ' || md5('t' || i),
       left(md5('v' || i), 20),
       i % 2 = 0,
       date '2000-01-01' + (i % 9000)::int,
       timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second',
       jsonb_build_object('id', i, 'src', 'base'),
       md5('u' || i)::uuid
FROM generate_series(1::bigint, :N) i;

CREATE TABLE load_src (LIKE base, rn bigint NOT NULL);
INSERT INTO load_src
SELECT k,
       (k * 7919 % 2000000)::int - 1000000,
       k * 1000003,
       round((k % 1000000) * 1.37, 2),
       k / 7.0::float8,
       CASE WHEN k % 50 = 0 THEN NULL ELSE format('load text %s, "%s"', k, md5('t' || k)) END,
       left(md5('v' || k), 16 + (k % 17)::int),
       k % 3 = 0,
       date '1990-01-01' + (k % 12000)::int,
       timestamptz '2021-06-01 00:00:00+00' + k * interval '37.000123 seconds',
       CASE WHEN k % 10 = 0 THEN NULL
            ELSE jsonb_build_object('id', k, 'tag', 't' || (k % 13), 'score', k % 1000, 'ok', k % 2 = 0) END,
       md5('load u' || k)::uuid,
       row_number() OVER (ORDER BY md5(k::text))
FROM generate_series(:H + 1::bigint, :H + :N) k;
