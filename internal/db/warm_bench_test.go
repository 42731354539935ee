package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"example.com/rotor/internal/db"
)

// BenchmarkFirstQuery times the get of Notes on a connection: the first get
// on a new connection, the first after WarmNotes, and a later one. Only the
// get is timed, not the connection or WarmNotes.
func BenchmarkFirstQuery(b *testing.B) {
	pg := startPostgres(b)
	superuser := pg.Connect(b)
	bootstrap(b, superuser)
	migrate(b, pg, superuser)
	user, password := createLoginRole(b, superuser, "v-app", db.AppRole)
	ctx := context.Background()

	const owner = "spiffe://rotor.test/bench"
	seed, err := pgx.ConnectConfig(ctx, connConfig(b, pg, user, password))
	if err != nil {
		b.Fatal(err)
	}
	note, err := db.NewNotes(seed).Create(ctx, owner, "title", "body")
	seed.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}

	cases := []struct {
		name string
		// prepare runs on the new connection before the timed get.
		prepare func(*pgx.Conn) error
	}{
		{"new connection", func(*pgx.Conn) error { return nil }},
		{"after WarmNotes", func(conn *pgx.Conn) error { return db.WarmNotes(ctx, conn) }},
		{"later get", func(conn *pgx.Conn) error {
			_, err := db.NewNotes(conn).Get(ctx, owner, note.ID)
			return err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				conn, err := pgx.ConnectConfig(ctx, connConfig(b, pg, user, password))
				if err != nil {
					b.Fatal(err)
				}
				if err := c.prepare(conn); err != nil {
					b.Fatal(err)
				}
				store := db.NewNotes(conn)
				b.StartTimer()

				if _, err := store.Get(ctx, owner, note.ID); err != nil {
					b.Fatal(err)
				}

				b.StopTimer()
				conn.Close(ctx)
				b.StartTimer()
			}
		})
	}
}
