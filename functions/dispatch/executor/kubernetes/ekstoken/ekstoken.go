// Package ekstoken mints the bearer token Amazon EKS accepts for an IAM
// identity, as `aws eks get-token` does, so that dispatch under Lambda
// reaches the cluster with its function's role and no stored credential.
package ekstoken

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/oauth2"
)

// EKS tokens are accepted for 15 minutes after signing; refresh a minute
// early so a token is never used at the edge of its life.
const (
	tokenPrefix   = "k8s-aws-v1."
	tokenLifetime = 14 * time.Minute
	clusterHeader = "x-k8s-aws-id"
)

// Source mints the bearer token EKS accepts for an IAM identity: a
// presigned STS GetCallerIdentity URL, bound to the cluster by the signed
// x-k8s-aws-id header, base64url-encoded behind "k8s-aws-v1." (the format
// of `aws eks get-token` and aws-iam-authenticator). The token carries a
// signature, never the AWS secret key.
type Source struct {
	Cluster string
	Region  string
	// Credentials overrides the SDK's default chain (environment, web
	// identity, container and instance roles); tests set static ones.
	Credentials aws.CredentialsProvider
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	client *sts.PresignClient
}

// Token implements oauth2.TokenSource, as client-go's caching token
// transport expects.
func (s *Source) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.TokenContext(ctx)
}

// TokenContext mints a fresh token.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	presigner, err := s.presigner(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	signedAt := now()
	req, err := presigner.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.PresignOptions) {
		o.ClientOptions = append(o.ClientOptions, func(so *sts.Options) {
			so.APIOptions = append(so.APIOptions,
				smithyhttp.SetHeaderValue(clusterHeader, s.Cluster),
				// The presigner hoists X-Amz-* headers into the query.
				// EKS ignores the value (it allows 15 min) but requires it.
				smithyhttp.SetHeaderValue("X-Amz-Expires", "60"),
			)
		})
		o.Presigner = clockedPresigner{HTTPPresignerV4: o.Presigner, now: signedAt}
	})
	if err != nil {
		// The SDK's error names the failing credential provider, not secrets.
		return nil, fmt.Errorf("mint EKS token for cluster %s: %w", s.Cluster, err)
	}
	return &oauth2.Token{
		AccessToken: tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL)),
		TokenType:   "Bearer",
		Expiry:      signedAt.Add(tokenLifetime),
	}, nil
}

// presigner loads the AWS configuration on first use and keeps it; a
// failure is not cached, so a transient credential error heals.
func (s *Source) presigner(ctx context.Context) (*sts.PresignClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(s.Region)}
	if s.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(s.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for EKS auth: %w", err)
	}
	s.client = sts.NewPresignClient(sts.NewFromConfig(cfg))
	return s.client, nil
}

// clockedPresigner pins the signing time to the one the token's expiry is
// computed from (and lets tests fix it).
type clockedPresigner struct {
	sts.HTTPPresignerV4
	now time.Time
}

func (p clockedPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.HTTPPresignerV4.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.now, optFns...)
}
