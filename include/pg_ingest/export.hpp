// Symbol visibility for the pg_ingest client library.
//
// The library is compiled with -fvisibility=hidden so that only the documented API is part of the
// shared object's ABI; PG_INGEST_API marks what is exported. On ELF the same attribute serves both
// the library build and its users, and it is harmless in the static archive.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define PG_INGEST_API __attribute__((visibility("default")))
#else
#define PG_INGEST_API
#endif
