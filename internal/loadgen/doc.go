// Package loadgen sends a mix of reads and writes to rotor's notes API over
// mutual TLS, at a fixed rate or as fast as the server responds, and
// measures throughput, latency and failures.
//
// # Schedule
//
// With a positive Rate, Run gives request i the start time start + i/Rate
// (an open-loop schedule) and starts it on one of at most Concurrency
// workers. The schedule does not wait for responses. When every worker is
// busy at a request's start time, the request starts late, and its latency
// still counts from its scheduled start. A server that stalls therefore
// raises the percentiles, instead of slowing the schedule and hiding the
// stall (the error known as coordinated omission). At a rate the server
// sustains, the achieved requests per second equal Rate, so they do not
// measure the server's capacity.
//
// With Rate zero, Run runs a closed loop instead: each of Concurrency
// workers starts its next request as soon as its previous one ends, so the
// achieved requests per second are the throughput that the server, and the
// machine under it, sustains with Concurrency requests in flight. Latency
// counts from each request's actual start. A stall slows the load as well,
// so closed-loop percentiles understate it, and latency at a given load is
// better measured on an open-loop schedule.
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
