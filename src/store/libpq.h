// libpq, opened on the first PostgreSQL connection (util/shared_library.h says why).
#pragma once

#include "util/shared_library.h"

#include <libpq-fe.h>

namespace ik::store {

#define IK_LIBPQ_FUNCTIONS(X)                                                                             \
    X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectdbParams) X(PQconninfoFree) X(PQconninfoParse)   \
    X(PQdb) X(PQerrorMessage) X(PQexec) X(PQexecParams) X(PQexecPrepared) X(PQfinish) X(PQfreemem) X(PQgetisnull)           \
    X(PQgetlength) X(PQgetvalue) X(PQhost) X(PQntuples) X(PQport) X(PQprepare) X(PQresultErrorField)                   \
    X(PQresultErrorMessage) X(PQresultStatus) X(PQstatus) X(PQtransactionStatus)

struct Libpq {
    IK_LIBPQ_FUNCTIONS(IK_FUNCTION_POINTER)
};

// Loads libpq.so.5 on first use; throws ik::Error(database) naming the package when it is missing.
const Libpq& libpq();

}  // namespace ik::store
