// Package loadgen sends a fixed-rate mix of reads and writes to rotor's notes
// API over mutual TLS and measures latency and failures.
//
// # Schedule
//
// Run gives request i the start time start + i/Rate (an open-loop schedule)
// and starts it on one of at most Concurrency workers. The schedule does not
// wait for responses. When every worker is busy at a request's start time,
// the request starts late, and its latency still counts from its scheduled
// start. A server that stalls therefore raises the percentiles, instead of
// slowing the schedule and hiding the stall (the error known as coordinated
// omission).
//
// # Workload
//
// Each request is a write with probability WriteRatio and a read otherwise.
// A write PATCHes the body of a note that the run created with probability
// PatchRatio, and POSTs a new note otherwise. A read lists the first page of
// notes with probability ListRatio, and GETs a note that the run created
// otherwise. A GET checks that the note has the content of its last
// acknowledged write. No request deletes a note.
//
// A note is never read and patched at the same time, so that the expected
// content of every GET is known. When the randomly chosen note is busy, or
// the run has created no note yet, a PATCH becomes a POST and a GET becomes
// a list. The mix therefore leans towards POST and list early in a run.
//
// # Acknowledged writes
//
// Result.Notes lists every note whose creation the server acknowledged,
// with the content of its last acknowledged write. Verify reads them back
// after the run. A note whose PATCH failed may hold either body, so it is
// left out of Result.Notes and counted in Result.UncertainNotes.
package loadgen
