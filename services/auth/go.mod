module github.com/perpetua-flow/backend/services/auth

go 1.26.0

require github.com/perpetua-flow/backend/libs v0.0.0

replace github.com/perpetua-flow/backend/libs => ../../libs
