package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/moby/api/types/jsonstream"
	"google.golang.org/protobuf/proto"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// buildStream reads the engine's JSON message stream for a BuildKit build,
// feeds BuildKit's progress to p, and returns the image id.
func buildStream(ctx context.Context, body io.Reader, p *builder.Progress) (imageID string, err error) {
	return readStream(body, func(st *bkclient.SolveStatus) error { return p.Send(ctx, st) })
}

// stepOutput reads the stream of a helper build, writing only what its
// steps print to out: the helper's own lines, not its steps' progress. It
// returns the id of the image the build left.
func stepOutput(body io.Reader, out io.Writer) (imageID string, err error) {
	return readStream(body, func(st *bkclient.SolveStatus) error {
		for _, l := range st.Logs {
			if _, err := out.Write(l.Data); err != nil {
				return err
			}
		}
		return nil
	})
}

// readStream calls status with each of BuildKit's progress updates in the
// engine's JSON message stream, and returns the image id the stream names.
func readStream(body io.Reader, status func(*bkclient.SolveStatus) error) (imageID string, err error) {
	dec := json.NewDecoder(body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return imageID, nil
			}
			return imageID, fmt.Errorf("read build stream: %w", err)
		}
		if m.Error != nil {
			return imageID, &StreamError{Message: m.Error.Message}
		}
		if m.Aux == nil {
			// Plain stream text ("Successfully tagged ...") repeats what the
			// BuildKit trace already said, out of order with it.
			continue
		}
		switch m.ID {
		case "moby.buildkit.trace":
			st, err := decodeTrace(*m.Aux)
			if err != nil {
				return imageID, err
			}
			if err := status(st); err != nil {
				return imageID, err
			}
		case "moby.image.id":
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil {
				imageID = aux.ID
			}
		}
	}
}

// decodeTrace turns one trace message (a JSON string holding base64 protobuf
// of a StatusResponse) into BuildKit's client-side status.
func decodeTrace(aux json.RawMessage) (*bkclient.SolveStatus, error) {
	var b64 string
	if err := json.Unmarshal(aux, &b64); err != nil {
		return nil, fmt.Errorf("decode build trace: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("decode build trace: %w", err)
	}
	var resp controlapi.StatusResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("decode build trace: %w", err)
	}
	return bkclient.NewSolveStatus(&resp), nil
}

// StreamError is an error the engine reported inside the stream, after the
// HTTP request itself had succeeded: a failed RUN step, a denied push.
type StreamError struct{ Message string }

func (e *StreamError) Error() string { return e.Message }
