// Umbrella header for the pg_ingest client library.
#pragma once

#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/result.hpp>
