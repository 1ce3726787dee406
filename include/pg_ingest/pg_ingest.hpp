// Umbrella header for the pg_ingest client library.
#pragma once

#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/options.hpp>
#include <pg_ingest/pool.hpp>
#include <pg_ingest/result.hpp>
#include <pg_ingest/schema.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/value.hpp>
#include <pg_ingest/writer.hpp>
