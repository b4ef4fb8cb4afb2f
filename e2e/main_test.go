package e2e_test

import (
	"testing"

	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
