// A one-line progress bar on stderr for long scans, shown only on a terminal that can redraw a line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ik {

class Progress {
public:
    // Shown only if `wanted` (not --quiet/--json), not turned off (--no-progress), stderr is a
    // terminal and $TERM is not "dumb". It writes plain text and carriage returns only: no colour
    // and no escape sequences, so NO_COLOR has nothing to turn off.
    Progress(std::string label, bool wanted);
    bool enabled() const { return enabled_; }
    void update(uint64_t done, uint64_t total);  // redraws at most ~10 times a second
    void finish();                               // clears the line

    // --no-progress: no bar for the rest of the process.
    static void turn_off();

private:
    std::string label_;
    bool enabled_;
    bool drawn_ = false;
    size_t drawn_width_ = 0;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ik
