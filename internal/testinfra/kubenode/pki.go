package kubenode

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the node's certificates, written as PEM files into dir: one CA
// signs the apiserver's and kubelet's serving certificates and a single
// system:masters client certificate every component uses (the recipe's
// "one admin client cert"); sa.key/sa.pub sign service-account tokens.
type pki struct {
	dir                              string
	caCert, caKey                    string
	apiserverCert, apiserverKey      string
	kubeletCert, kubeletKey          string
	adminCert, adminKey              string
	saKey, saPub                     string
	caPEM, adminCertPEM, adminKeyPEM []byte
}

func newPKI(dir, nodeName string) (*pki, error) {
	p := &pki{dir: dir}
	path := func(n string) string { return filepath.Join(dir, n) }
	p.caCert, p.caKey = path("ca.crt"), path("ca.key")
	p.apiserverCert, p.apiserverKey = path("apiserver.crt"), path("apiserver.key")
	p.kubeletCert, p.kubeletKey = path("kubelet.crt"), path("kubelet.key")
	p.adminCert, p.adminKey = path("admin.crt"), path("admin.key")
	p.saKey, p.saPub = path("sa.key"), path("sa.pub")

	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "af-builder kubenode CA"},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	p.caPEM = pemBytes("CERTIFICATE", caDER)
	if err := writePEM(p.caCert, p.caPEM); err != nil {
		return nil, err
	}
	if err := writePEM(p.caKey, pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(caKey))); err != nil {
		return nil, err
	}

	serial := int64(2)
	issue := func(certPath, keyPath string, tmpl x509.Certificate) (certPEM, keyPEM []byte, err error) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		serial++
		tmpl.NotBefore, tmpl.NotAfter = now, now.Add(48*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		certPEM = pemBytes("CERTIFICATE", der)
		keyPEM = pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
		if err := writePEM(certPath, certPEM); err != nil {
			return nil, nil, err
		}
		return certPEM, keyPEM, writePEM(keyPath, keyPEM)
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	if _, _, err := issue(p.apiserverCert, p.apiserverKey, x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		// The first address of the service range: the kubernetes Service.
		IPAddresses: append(loopback, net.ParseIP("10.0.0.1")),
	}); err != nil {
		return nil, fmt.Errorf("apiserver certificate: %w", err)
	}
	if _, _, err := issue(p.kubeletCert, p.kubeletKey, x509.Certificate{
		Subject:     pkix.Name{CommonName: nodeName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{nodeName, "localhost"},
		IPAddresses: loopback,
	}); err != nil {
		return nil, fmt.Errorf("kubelet certificate: %w", err)
	}
	if p.adminCertPEM, p.adminKeyPEM, err = issue(p.adminCert, p.adminKey, x509.Certificate{
		Subject:     pkix.Name{CommonName: "kubenode-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.saKey, pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))); err != nil {
		return nil, err
	}
	if err := writePEM(p.saPub, pemBytes("PUBLIC KEY", pub)); err != nil {
		return nil, err
	}
	return p, nil
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writePEM(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
