#include "store/libpq.h"

namespace ik::store {

const Libpq& libpq() {
    static const Libpq functions = [] {
        static SharedLibrary library("libpq.so.5", "libpq5", ExitCode::database);
        Libpq table;
        IK_LIBPQ_FUNCTIONS(IK_BIND_FUNCTION)
        return table;
    }();
    return functions;
}

}  // namespace ik::store
