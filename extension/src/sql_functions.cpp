// SQL-callable functions of the user API that do not belong to a bigger module.
#include "boundary.hpp"

PGI_FUNCTION(ingest_version) {
    return PointerGetDatum(pg_ingest::string_to_text(PG_INGEST_VERSION));
}
