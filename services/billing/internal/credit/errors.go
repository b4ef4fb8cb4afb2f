package credit

import (
	"fmt"
	"strconv"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// Insufficient is the INSUFFICIENT_CREDITS answer (API.md §5): the balance per kind and
// the amount asked for are in the details, so a client can say what is missing. It
// carries no cause: a refusal is an expected answer, not something to log.
func Insufficient(b Balance, needed int) error {
	return &apperr.Error{
		Code:    apperr.InsufficientCredits,
		Message: fmt.Sprintf("this needs %d credits; %d available", needed, b.Total()),
		Details: []apperr.Detail{
			{Field: "required", Message: strconv.Itoa(needed)},
			{Field: "total", Message: strconv.Itoa(b.Total())},
			{Field: "daily", Message: strconv.Itoa(b.Daily)},
			{Field: "subscription", Message: strconv.Itoa(b.Subscription)},
			{Field: "purchased", Message: strconv.Itoa(b.Purchased)},
			{Field: "kickstart", Message: strconv.Itoa(b.Kickstart)},
		},
	}
}
